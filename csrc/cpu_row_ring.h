// Three consecutive rows of a padded activation, kept while a band's rows are walked from top
// to bottom: row j lives in slot j mod 3, so rows r-1, r and r+1 never share a slot, and asking
// for row r+1 overwrites row r-2, which the walk no longer needs.
#pragma once

#include <cstdint>

namespace wdsr_fast {
namespace cpu {

class RowRing {
 public:
  // storage: 3 * row_floats floats; zero_row: row_floats zeros, the rows outside [0, height).
  RowRing(float* storage, int64_t row_floats, const float* zero_row, int64_t height)
      : storage_(storage), row_floats_(row_floats), zero_row_(zero_row), height_(height) {}

  // Row `row`: computed by fill(row, destination) the first time it is asked for.
  template <typename Fill>
  const float* get(int64_t row, Fill&& fill) {
    if (row < 0 || row >= height_) return zero_row_;
    const int64_t slot = row % 3;
    float* destination = storage_ + slot * row_floats_;
    if (held_[slot] != row) {
      fill(row, destination);
      held_[slot] = row;
    }
    return destination;
  }

 private:
  float* storage_;
  int64_t row_floats_;
  const float* zero_row_;
  int64_t height_;
  int64_t held_[3] = {-1, -1, -1};
};

}  // namespace cpu
}  // namespace wdsr_fast

"""Custom ops of the ``wdsr_fast`` namespace: registration, fake implementations, autograd."""

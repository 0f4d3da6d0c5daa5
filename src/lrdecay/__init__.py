"""lrdecay: how learning-rate decay sequences and update strategies shape CNN training."""

__version__ = "0.1.0"

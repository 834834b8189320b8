"""Convolution library kernels (in progress)."""

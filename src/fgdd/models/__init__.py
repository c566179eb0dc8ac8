"""Architectures (every constructor takes num_classes, input_size) and the checkpoint format."""

"""fgdd: foreground-aware dataset distillation."""

__version__ = "0.1.0"

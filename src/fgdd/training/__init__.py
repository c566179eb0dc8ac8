"""Lightning modules for supervised training (the teacher)."""

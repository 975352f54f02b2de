"""One module per component kind (pip, npm, conda, release): its lock model."""

"""What several test folders and harnesses share (no tests here)."""

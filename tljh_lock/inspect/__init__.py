"""Reading a lock: check, diff and the exports to other tools' formats."""

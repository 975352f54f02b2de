"""Reading a lock, server side: `check` (fresh against the recipes, and every component's
proof for every target, offline) and `diff` (what changed between two locks, for a reviewer).
May import lock/ and core/."""

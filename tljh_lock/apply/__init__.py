"""The applier: turn a lock (and the verified artifacts it names) into an installed TLJH.

`plan` looks at the lock, the recorded state and the target root and lists the steps, each keyed
by the hash of its inputs; `engine` runs the steps that are not done yet. Every path goes through
a `Layout` (the `--root` prefix), every subprocess through `tljh_lock.runner.run`.
"""

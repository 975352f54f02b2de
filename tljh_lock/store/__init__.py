"""The content-addressed store, server side: `STORE/sha256/<hex>` and its records (cas.py),
resumable verified transfers into it (download.py), `fetch` of a whole lock from store mirrors
and canonical URLs, and wheels built from sdists and source pins. May import upstream/, lock/
and core/."""

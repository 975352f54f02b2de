"""Maintainer only (the zipapp leaves it out): the lock exported in the formats other tools
read, one module per format (PEP 751 pylock, written with tomli-w; npm's package-lock, whose
rendering belongs to the npm kind; conda-lock), with a static registry in formats.py. May
import lock/ and core/."""

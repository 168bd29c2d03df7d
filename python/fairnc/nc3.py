"""The NC3 regularizer (placeholder; see below)."""

"""``liaison relay``: a field site's own broker linked to headquarters over a poor link."""

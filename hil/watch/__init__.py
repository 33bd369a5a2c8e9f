"""``hil watch``: a local page that follows a run while it is written and after it ends."""

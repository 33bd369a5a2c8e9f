"""Files shipped with memristor-hil: default bench, board map, response curves."""

"""Device side: faithful simulators of every device, served on ptys and TCP."""

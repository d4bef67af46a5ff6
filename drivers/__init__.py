"""Host side of each device: the line protocol, the laser and cryo drivers, SCPI instruments."""

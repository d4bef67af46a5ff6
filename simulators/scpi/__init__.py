"""Simulated SCPI bench instruments: energy meter EM-1 and reference thermometer RT-1."""

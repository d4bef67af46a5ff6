"""The safety kernel: pure rules and state machines, no I/O at all.

plans (protocol table -> plans), checklist (gating, aftercare), facts and decisions (the
kernel's inputs and outputs), kernel / laser_kernel / cryo_kernel (runtime monitors).
"""

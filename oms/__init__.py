"""The OMS core: order model, FIX state machine, engine, journal, runtime."""

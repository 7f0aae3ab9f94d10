"""Object stores blockd keeps its blocks in.

`base` holds the interface and its errors; each other module is one
implementation (or, later, a wrapper around one). Nothing here knows that the
objects are blocks or that keys are hashes.
"""

"""Runnable seed workflows; installed as `optimus.examples` so `optimus demo NAME` finds them."""

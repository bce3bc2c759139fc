"""Units, fleet-style: the engine that places them and the machine side that runs them."""

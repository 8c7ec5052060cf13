"""Pattern storage backends behind one interface."""

"""What every *ToStorage operator shares: the window, exact reads, spooling and atomic writes."""

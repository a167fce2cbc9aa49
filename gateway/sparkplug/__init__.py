"""Sparkplug B edge node for fleets: group = site, edge node = gateway, device = pack."""

"""The installation's nodes: `nodes/<name>.py` (or a package) with a `main(argv)` each.

`likeness node NAME` runs `nodes.NAME.main`; a node imports `installation`, never another node.
"""

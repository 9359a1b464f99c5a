"""Repository checks that `make contracts` runs beside lint-imports; not part of the installed package."""

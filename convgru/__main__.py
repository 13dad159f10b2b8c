"""python -m convgru train|eval|predict|export ...: the `convgru` command (convgru.commands)."""

from convgru.commands import main

main()

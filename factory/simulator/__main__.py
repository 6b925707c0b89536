"""`python -m factory.simulator ...`: the simulator without the `factory` command (same options)."""

import sys

from factory.commands.simulate import build_parser

args = build_parser().parse_args()
sys.exit(args.func(args))

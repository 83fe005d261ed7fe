"""The command line's commands, one module per group; ``msgstorm.cli`` registers them."""

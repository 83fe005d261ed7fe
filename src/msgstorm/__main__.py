"""``python -m msgstorm``: the same command line as the ``msgstorm`` console entry."""

from msgstorm.cli import main

if __name__ == "__main__":
    main()

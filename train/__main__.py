"""`python -m prodseg.train` = `prodseg-train` (also the entry point under torchrun)."""

from prodseg.train.cli import main

if __name__ == "__main__":
    main()

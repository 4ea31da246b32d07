"""`python -m radbatch.sample ...`: the same command as `radbatch sample ...`."""

from radbatch.cli.sample import sample

if __name__ == "__main__":
    sample(prog_name="radbatch sample")

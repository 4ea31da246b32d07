"""The `radbatch` command line: Click commands that build option objects, call the library and map errors to exit
codes (one policy, policy.py). `main` is the console script's entry point (pyproject: radbatch.cli:main).

The group (main.py) imports every command module to register it; the package itself imports nothing, so that a
command module (finetune.py, evaluate.py, ...) can be imported without the group and no circle forms."""


def main() -> None:
    from .main import main as run
    run()


def __getattr__(name: str):
    if name == "cli":
        from .main import cli
        return cli
    raise AttributeError(f"module 'radbatch.cli' has no attribute {name!r}")

"""The one exception evaluation raises for problems a user can fix (files, columns, joins, options).

A subclass of radbatch's InputError so the CLI's generic handling applies; `eval_command` turns it into a
click.ClickException. Messages name files, columns, counts and row numbers, never report text.
"""

from __future__ import annotations

from radbatch.errors import InputError


class EvalError(InputError):
    pass

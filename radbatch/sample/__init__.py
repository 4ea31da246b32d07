"""`radbatch sample`: synthetic radiology reports with gold labels for all nine task heads.

Facts are decided first and the text is written from them, so every gold value is true by
construction. Import cost stays small: the Click command imports the generator only when it runs.
"""

from radbatch.sample.native import activate

# the mypyc-compiled generator, when `make setup` built it from these very sources (see native.py)
activate(__path__)

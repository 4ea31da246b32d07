"""--retry-errors: reopen a finished output, keeping every unit without a failed head as a part.

The units holding a row whose head errored or was truncated are then recomputed whole (units are always
decoded whole, so results stay independent of how the run was split).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from .output import RunStore


def reopen_with_errors_removed(store: RunStore, plan) -> int:
    import polars as pl
    index = {f.path: f.index for f in plan.files}
    size = plan.opts.unit_size
    bad_units = 0
    for path in store.final_paths(plan.files):
        if not path.exists():
            continue
        df = pl.read_parquet(path)
        status_cols = [h.col("status") for h in plan.heads if h.col("status") in df.columns]
        failed = pl.any_horizontal([pl.col(c).is_in(["error", "truncated"]) for c in status_cols]) \
            if status_cols else pl.lit(False)
        df = df.with_columns(_source_index=pl.col("source_file").replace_strict(index, return_dtype=pl.Int32),
                             _unit=(pl.col("source_row") // size) * size)
        df = df.with_columns(_bad=failed.any().over("_source_index", "_unit"))
        bad_units += df.filter("_bad").select("_source_index", "_unit").n_unique()
        keep = df.filter(~pl.col("_bad"))
        for (file_index,), part in keep.group_by("_source_index"):
            ids = [f"{file_index}:{u}" for u in part["_unit"].unique().sort().to_list()]
            part = part.drop("_unit", "_bad", "id_duplicated", strict=False)
            order = [c for c in part.columns if c != "_source_index"]
            order.insert(order.index("source_file"), "_source_index")
            table = part.select(order).to_arrow()
            declared = pq.read_schema(path)   # polars widens strings; parts keep the declared Arrow types
            table = table.cast(pa.schema([declared.field(c) if c in declared.names else table.schema.field(c)
                                          for c in table.column_names]))
            store.write_part(file_index, table, ids)
    return bad_units

"""The stages of `radbatch annotate` on the driver: plan -> job -> executor -> parts -> finalize; rows (prepare /
assemble), the result store, retry. (Named `annotation`, not `annotate`: `radbatch.annotate` is the API function.)"""

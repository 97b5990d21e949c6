"""The paper's experiment grid: plan (per-network prototxts), sweep (run them in dependency
order, locally or on Ray), report (results.csv, tables and figures from Caffe logs)."""

#!/usr/bin/env python3
"""Runs `tcptape sql stages PATH` on DuckDB or on Spark SQL (local mode) and prints one JSON
object: {"engine", "seconds" (the query alone, after the session started), "stages": [...]}.

usage: sql_engines.py duckdb|spark PATH [TCPTAPE]
  SPARK_CORES (default: all), SPARK_MEMORY (driver heap, default 8g), SPARK_PARTITIONS (shuffle
  partitions, default 4 × cores) tune the local Spark session.
"""
import json
import os
import subprocess
import sys
import time


def main():
    engine, path = sys.argv[1], sys.argv[2]
    tcptape = sys.argv[3] if len(sys.argv) > 3 else "tcptape"
    sql = subprocess.run(
        [tcptape, "sql", "stages", path, "--engine", engine],
        check=True, capture_output=True, text=True,
    ).stdout
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        t0 = time.monotonic()
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    else:
        from pyspark.sql import SparkSession

        cores = os.environ.get("SPARK_CORES", str(os.cpu_count()))
        spark = (
            SparkSession.builder.master(f"local[{cores}]")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", os.environ.get("SPARK_MEMORY", "8g"))
            .config("spark.sql.shuffle.partitions",
                    os.environ.get("SPARK_PARTITIONS", str(4 * int(cores))))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        spark.sql("SET spark.sql.constraintPropagation.enabled=false")
        t0 = time.monotonic()
        rows = [r.asDict() for r in spark.sql(sql).collect()]
    seconds = time.monotonic() - t0
    print(json.dumps({"engine": engine, "seconds": seconds, "stages": rows}))


if __name__ == "__main__":
    main()

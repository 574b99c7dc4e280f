/// DAG files on disk: YAML in, `TetherScheduler.DAGSpec` out. The format is documented
/// in docs/dag-format.md.
public enum DAGFile {}

/** Errors of `segmesh lab`: each names what failed and how to fix it. */

/** The topology cannot be laid out as containers and networks (addresses, names, references). */
export class LabTopologyError extends Error {
  override readonly name = 'LabTopologyError';
  readonly file: string;
  readonly key: string;
  constructor(file: string, key: string, message: string) {
    super(`${file}: ${key}: ${message}`);
    this.file = file;
    this.key = key;
    this.message = `${file}: ${key}: ${message}`;
  }
}

/** No Docker engine answers, or it refused a request. */
export class LabEngineError extends Error {
  override readonly name = 'LabEngineError';
}

/** Building the lab images failed. */
export class LabImageError extends Error {
  override readonly name = 'LabImageError';
}

/** A node did not come up (its start script failed, or a daemon did not answer in time). */
export class LabNodeError extends Error {
  override readonly name = 'LabNodeError';
  readonly node: string;
  constructor(node: string, message: string) {
    super(`node ${node}: ${message}`);
    this.node = node;
  }
}

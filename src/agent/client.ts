/**
 * A client of the agent's local API (segmesh.v1.AgentService over its unix socket), used by the CLI
 * and the CNI plugin. Errors say what to do: start the agent, join the `segmesh` group, fix the input.
 */
import { access, constants } from 'node:fs/promises';
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { Client, credentials, status } from '@grpc/grpc-js';
import { AgentService } from '../gen/segmesh/v1/agent_pb.js';

export const DEFAULT_SOCKET = process.env.SEGMESH_API_SOCKET ?? '/run/segmesh/agent.sock';

type Methods = (typeof AgentService)['method'];
type MethodName = keyof Methods;

export class AgentCallError extends Error {
  override readonly name = 'AgentCallError';
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

export class AgentClient {
  readonly socket: string;
  readonly #client: Client;

  constructor(socket = DEFAULT_SOCKET) {
    this.socket = socket;
    this.#client = new Client(`unix://${socket}`, credentials.createInsecure());
  }

  /** Fails early with the remedy when the socket is missing or not ours to use. */
  async check(): Promise<void> {
    try {
      await access(this.socket, constants.R_OK | constants.W_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new AgentCallError(
          `no agent socket at ${this.socket}: is 'segmesh agent' running? (systemctl status segmesh)`,
        );
      }
      if (code === 'EACCES') {
        throw new AgentCallError(
          `permission denied on ${this.socket}: the API is for root and the group 'segmesh' (usermod -aG segmesh $USER, then log in again)`,
        );
      }
      throw e;
    }
  }

  async call<M extends MethodName>(
    name: M,
    request: MessageInitShape<Methods[M]['input']>,
    timeoutMs = 30_000,
  ): Promise<MessageShape<Methods[M]['output']>> {
    await this.check();
    const method = AgentService.method[name] as unknown as {
      name: string;
      input: DescMessage;
      output: DescMessage;
    };
    const input = method.input;
    const output = method.output;
    const message = create(input, request as never);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        `/${AgentService.typeName}/${method.name}`,
        (v: MessageShape<typeof input>) => Buffer.from(toBinary(input, v)),
        (b: Buffer) => fromBinary(output, b),
        message,
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err) {
            const remedy =
              err.code === status.UNAVAILABLE
                ? ` (is 'segmesh agent' running on ${this.socket}?)`
                : err.code === status.DEADLINE_EXCEEDED
                  ? ' (the agent did not answer in time; see its log)'
                  : '';
            reject(new AgentCallError(`${err.details || err.message}${remedy}`, err.code));
          } else resolve(res as MessageShape<Methods[M]['output']>);
        },
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}

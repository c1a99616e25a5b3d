/**
 * A small typed gRPC client for GoBGP's API (`apipb.GobgpApi`), on @grpc/grpc-js, with the
 * protobuf-es messages generated from the Debian package's protos (src/gen/gobgp).
 *
 * Each call names its remedy on failure. `connect()` checks that gobgpd answers GetBgp over the
 * `apipb` service (GoBGP 3.x); a gobgpd that does not is refused with GobgpApiMismatchError.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { Client, credentials, type Metadata, status } from '@grpc/grpc-js';
import {
  type AddPathStreamRequest,
  AddPathStreamRequestSchema,
  type GetBgpResponse,
  GobgpApi,
  type Path,
  TableType,
} from '../gen/gobgp/gobgp_pb.js';
import { GobgpApiMismatchError, GobgpCallError } from './errors.ts';

type Methods = (typeof GobgpApi)['method'];
type MethodName = keyof Methods;
type In<M extends MethodName> = Methods[M]['input'];
type Out<M extends MethodName> = Methods[M]['output'];

const SERVICE = GobgpApi.typeName; // 'apipb.GobgpApi'

function serializer<D extends DescMessage>(schema: D) {
  return (value: MessageShape<D>): Buffer => {
    const bytes = toBinary(schema, value);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D) {
  return (value: Buffer): MessageShape<D> => fromBinary(schema, value);
}

/** Remedies by gRPC status, for error messages. */
function remedyFor(code: number | undefined, target: string): string {
  switch (code) {
    case status.UNAVAILABLE:
      return `check that gobgpd runs and listens on ${target} (--api-hosts)`;
    case status.UNIMPLEMENTED:
      return 'this gobgpd does not implement the call: run gobgpd 3.x';
    case status.DEADLINE_EXCEEDED:
      return 'gobgpd is overloaded or stuck; see its log';
    default:
      return 'see the gobgpd log for the reason';
  }
}

export interface GobgpClientOptions {
  /** `unix:///run/segmesh/gobgpd.sock`, `127.0.0.1:50051`, `[::1]:50051`. */
  readonly target: string;
  /** Deadline of unary calls, ms (default 10 s). */
  readonly callTimeoutMs?: number;
}

export class GobgpClient {
  readonly target: string;
  readonly #client: Client;
  readonly #timeout: number;

  constructor(opts: GobgpClientOptions) {
    this.target = opts.target;
    this.#timeout = opts.callTimeoutMs ?? 10_000;
    this.#client = new Client(opts.target, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
  }

  #path(name: MethodName): string {
    return `/${SERVICE}/${GobgpApi.method[name].name}`;
  }

  #error(name: MethodName, e: { code?: number; details?: string; message?: string }): GobgpCallError {
    return new GobgpCallError(
      `${SERVICE}/${GobgpApi.method[name].name}`,
      e.code,
      e.details ?? e.message ?? 'unknown error',
      remedyFor(e.code, this.target),
    );
  }

  /** A unary call. */
  unary<M extends MethodName>(
    name: M,
    request: MessageInitShape<In<M>>,
    timeoutMs = this.#timeout,
  ): Promise<MessageShape<Out<M>>> {
    const m = GobgpApi.method[name];
    const input = m.input as In<M>;
    const output = m.output as Out<M>;
    const msg = create(input, request);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        this.#path(name),
        serializer(input),
        deserializer(output),
        msg,
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err) reject(this.#error(name, err));
          else resolve(res as MessageShape<Out<M>>);
        },
      );
    });
  }

  /** A server-streaming call, as an async iterable; `signal` cancels it. */
  async *stream<M extends MethodName>(
    name: M,
    request: MessageInitShape<In<M>>,
    opts: { signal?: AbortSignal; metadata?: Metadata } = {},
  ): AsyncGenerator<MessageShape<Out<M>>> {
    const m = GobgpApi.method[name];
    const input = m.input as In<M>;
    const output = m.output as Out<M>;
    const call = this.#client.makeServerStreamRequest(
      this.#path(name),
      serializer(input),
      deserializer(output),
      create(input, request),
      {},
    );
    const onAbort = () => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const item of call) yield item as MessageShape<Out<M>>;
    } catch (e) {
      const err = e as { code?: number };
      if (err.code === status.CANCELLED && opts.signal?.aborted) return;
      throw this.#error(name, err);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /** Collects a server stream. */
  async list<M extends MethodName>(
    name: M,
    request: MessageInitShape<In<M>>,
  ): Promise<MessageShape<Out<M>>[]> {
    const out: MessageShape<Out<M>>[] = [];
    for await (const item of this.stream(name, request)) out.push(item);
    return out;
  }

  /**
   * AddPathStream: sends the paths in chunks of `chunk` per request, honouring back-pressure.
   * Requests may also be given pre-encoded (Uint8Array of an AddPathStreamRequest).
   */
  async addPathStream(
    batches: Iterable<readonly Path[] | Uint8Array>,
    tableType: TableType = TableType.GLOBAL,
  ): Promise<void> {
    const name = 'addPathStream';
    let done!: (e?: unknown) => void;
    const finished = new Promise<void>((resolve, reject) => {
      done = (e) => (e ? reject(e) : resolve());
    });
    const call = this.#client.makeClientStreamRequest<AddPathStreamRequest | Uint8Array, unknown>(
      this.#path(name),
      (v) => {
        if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        return serializer(AddPathStreamRequestSchema)(v);
      },
      deserializer(EmptySchema),
      (err) => done(err ? this.#error(name, err) : undefined),
    );
    for (const batch of batches) {
      const req =
        batch instanceof Uint8Array
          ? batch
          : create(AddPathStreamRequestSchema, { tableType, paths: [...batch] });
      if (!call.write(req)) await new Promise<void>((r) => call.once('drain', () => r()));
    }
    call.end();
    await finished;
  }

  /**
   * Checks that gobgpd speaks the API this agent was built for. Returns GetBgp's answer
   * (global AS 0 means gobgpd runs without a global configuration yet).
   */
  async connect(timeoutMs = 10_000): Promise<GetBgpResponse> {
    await new Promise<void>((resolve, reject) => {
      this.#client.waitForReady(Date.now() + timeoutMs, (e) =>
        e
          ? reject(
              new GobgpCallError(
                'connect',
                status.UNAVAILABLE,
                e.message,
                remedyFor(status.UNAVAILABLE, this.target),
              ),
            )
          : resolve(),
      );
    });
    try {
      return await this.unary('getBgp', {}, timeoutMs);
    } catch (e) {
      if (e instanceof GobgpCallError && e.grpcCode === status.UNIMPLEMENTED) {
        throw new GobgpApiMismatchError(
          this.target,
          `it answers but does not implement ${SERVICE}/GetBgp (GoBGP 2.x names its service gobgpapi.GobgpApi)`,
        );
      }
      if (e instanceof GobgpCallError && e.grpcCode === status.INTERNAL) {
        throw new GobgpApiMismatchError(this.target, `GetBgp's answer does not decode: ${e.message}`);
      }
      throw e;
    }
  }

  close(): void {
    this.#client.close();
  }
}

// Certificate and protocol faults on the way to the coordinator (common/tls-fault.ts) are permanent: the agent retries
// them briefly (a certificate being swapped, a proxy restarting), then stops with exit code 4 and says what is wrong.
import { readPeerCertificate, tlsFault, type TlsFault } from "../common/tls-fault.ts";

/** Connection attempts in a row that end in a TLS fault before the agent gives up. */
const TLS_FAULT_ATTEMPTS = 3;

/** The agent cannot talk to the coordinator securely (or at all, with this URL): retrying won't help. */
export class CoordinatorTlsFault extends Error {
  constructor(readonly fault: TlsFault) {
    super(fault.message);
    this.name = "CoordinatorTlsFault";
  }
}

/** Counts consecutive TLS faults of one link; any other outcome resets the count. */
export class TlsFaultCounter {
  #inARow = 0;

  constructor(private readonly coordinatorUrl: string) {}

  /** The fault in `err`, or undefined (and the count starts over) when it is none. */
  fault(err: unknown): TlsFault | undefined {
    const fault = tlsFault(err, { url: this.coordinatorUrl, caSetting: "COORDINATOR_CA_PATH" });
    this.#inARow = fault ? this.#inARow + 1 : 0;
    return fault;
  }

  get exhausted(): boolean {
    return this.#inARow >= TLS_FAULT_ATTEMPTS;
  }

  reset(): void {
    this.#inARow = 0;
  }

  /** The final fault, its message completed with the certificate's dates and names when they can be read. */
  async final(err: unknown, fallback: TlsFault): Promise<CoordinatorTlsFault> {
    const certificate = await readPeerCertificate(this.coordinatorUrl);
    return new CoordinatorTlsFault(
      tlsFault(err, { url: this.coordinatorUrl, caSetting: "COORDINATOR_CA_PATH", certificate }) ?? fallback,
    );
  }
}

// Remembers what each recent nonce carried, so an ACK or NACK, even of a nonce that
// is already superseded (grpc-js-xds does that), is attributed to the right version.
export interface SentNonce {
  version: string;
  sentAt: number;
  resourceNames: string[];
}

const REMEMBERED = 16;

export class NonceLog {
  private counter = 0;
  private readonly sent = new Map<string, SentNonce>();

  next(entry: SentNonce): string {
    const nonce = String(++this.counter);
    this.sent.set(nonce, entry);
    if (this.sent.size > REMEMBERED) this.sent.delete(this.sent.keys().next().value!);
    return nonce;
  }

  get(nonce: string): SentNonce | undefined {
    return this.sent.get(nonce);
  }

  get latest(): string | undefined {
    return this.counter === 0 ? undefined : String(this.counter);
  }
}

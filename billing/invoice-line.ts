/**
 * A rated line as the connector hands it to an ISP: the subscription server's rated line with
 * the subscriber id mapped back to the ISP's own customer ref. Only the connector side ever
 * holds this pairing.
 */
export interface IspInvoiceLine {
  lineId: string;
  kind: 'charge' | 'adjustment';
  period: string;
  servicePeriod: string;
  ispId: string;
  customerRef: string;
  subscriberId: string;
  licenceId: string;
  module: string;
  days: number;
  daysInPeriod: number;
  quantity: string;
  unitPrice: string;
  amount: string;
  currency: string;
  activationEventId: string;
  activatedAt: string;
}

/**
 * A rated line as the subscription server streams it: the same fields without the customer
 * ref. Declared here, not imported from `licensing/`, which the connector's billing may not
 * import; `queue/billing-client.ts` checks the wire against the server's own schema.
 */
export type VendorRatedLine = Omit<IspInvoiceLine, 'customerRef'>;

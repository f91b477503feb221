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

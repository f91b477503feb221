/**
 * Test data for the vendor documents: rated lines made by code (deterministic), and the seller
 * and buyer of the shipped configs' shape. Used by the tests beside it only.
 */
import type { Party } from '../../config/vendor-billing-schema.js';
import type { RatedLine } from './rated-line.js';

export const SELLER: Party = {
  name: 'Sentinelle Logiciels SAS',
  vatId: 'FR11123456782',
  legalId: { id: '123456782', scheme: '0002' },
  address: {
    street: "18 rue de la Chaussée d'Antin",
    city: 'Paris',
    postalCode: '75009',
    countryCode: 'FR',
  },
  email: 'facturation@sentinelle-logiciels.example',
  electronicAddress: { id: '123456782', scheme: '0225' },
};

export const BUYER: Party = {
  name: 'Demo FAI <SAS> & "Co"',
  vatId: 'FR14987654324',
  legalId: { id: '987654324', scheme: '0002' },
  address: { street: '4 place de la Bourse', city: 'Lyon', postalCode: '69002', countryCode: 'FR' },
};

let n = 0;

/** One rated line; the defaults are a full-month antivirus charge at 1.20. */
export function ratedLine(over: Partial<RatedLine> = {}): RatedLine {
  n++;
  const period = over.period ?? '2026-11';
  const servicePeriod = over.servicePeriod ?? period;
  const kind = over.kind ?? 'charge';
  const licenceId = over.licenceId ?? `lic_${String(n).padStart(6, '0')}`;
  const module = over.module ?? 'antivirus';
  const subscriberId = over.subscriberId ?? `sub_${String(n).padStart(6, '0')}`;
  return {
    lineId:
      kind === 'charge'
        ? `${servicePeriod}/${subscriberId}/${licenceId}/${module}`
        : `${period}/adj/${servicePeriod}/${subscriberId}/${licenceId}/${module}`,
    kind,
    period,
    servicePeriod,
    ispId: 'demo-fai',
    subscriberId,
    licenceId,
    module,
    days: 30,
    daysInPeriod: 30,
    quantity: '1',
    unitPrice: '1.20',
    amount: '1.20',
    currency: 'EUR',
    activationEventId: String(1000 + n),
    activatedAt: '2026-10-15T09:30:00.000Z',
    ...over,
  };
}

export async function* streamOf(lines: RatedLine[]): AsyncIterable<RatedLine> {
  for (const line of lines) yield line;
}

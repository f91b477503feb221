/**
 * Vendor-side billing settings of a deployment (`billing:` in relais.yaml): who the seller is on
 * every invoice, how invoice numbers are written, how the ISP pays, and where the vendor's
 * documents go. Also the party shape shared with each ISP's buyer block. Owned by the vendor
 * invoice (UBL) work; see docs/vendor-invoice.md.
 *
 * What is required follows EN 16931: a party always has a name (BT-27 / BT-44) and a postal
 * address with a country code (BG-5 / BG-8, BT-40 / BT-55). The VAT id is optional here because
 * whether it is needed depends on the VAT category (BR-S-02 wants the seller's for category S,
 * BR-AE-02 both for reverse charge); the document builder checks that, naming the field.
 */
import { z } from 'zod';

const text = (max: number) => z.string().trim().min(1).max(max);

export const postalAddressSchema = z
  .strictObject({
    street: text(150).describe('Street and number (BT-35 / BT-50).'),
    additionalStreet: text(150).optional().describe('Second address line (BT-36 / BT-51).'),
    city: text(80).describe('City (BT-37 / BT-52).'),
    postalCode: text(16).describe('Postal code (BT-38 / BT-53).'),
    countryCode: z
      .string()
      .regex(/^[A-Z]{2}$/, 'expected an ISO 3166-1 alpha-2 country code such as FR')
      .describe('ISO 3166-1 alpha-2 country code (BT-40 / BT-55).'),
  })
  .describe('Postal address of a company.');

/** An identifier with the ISO 6523 ICD (legal id) or Peppol EAS (endpoint) code of its scheme. */
const schemedId = (what: string, defaultScheme: string) =>
  z
    .strictObject({
      id: text(64).describe(what),
      scheme: z
        .string()
        .regex(/^\d{4}$/, 'expected a four-digit scheme code such as 0002')
        .default(defaultScheme)
        .describe(
          'Four-digit scheme code: ISO 6523 ICD for a legal id (0002 SIREN, 0009 SIRET), Peppol EAS for an electronic address (0225 French SIREN routing, 0009 SIRET, 9957 French VAT).',
        ),
    })
    .describe(what);

export const partySchema = z
  .strictObject({
    name: text(200).describe('Registered name (BT-27 / BT-44).'),
    vatId: z
      .string()
      .regex(
        /^[A-Z]{2}[0-9A-Za-z+*.]{2,13}$/,
        'expected a VAT id with its country prefix, such as FR32123456789',
      )
      .optional()
      .describe('VAT identifier with country prefix (BT-31 / BT-48).'),
    legalId: schemedId('Legal registration id, the SIREN in France (BT-30 / BT-47).', '0002')
      .optional()
      .describe('Legal registration id and its scheme (BT-30 / BT-47).'),
    address: postalAddressSchema,
    email: z.email().optional().describe("The company's invoicing e-mail address (BT-43 / BT-58)."),
    electronicAddress: schemedId('Electronic address for Peppol (BT-34 / BT-49).', '0225')
      .optional()
      .describe('Where e-invoices reach this company over Peppol: EndpointID and its scheme.'),
  })
  .describe('A company on an invoice.');

export const paymentMeansSchema = z
  .strictObject({
    code: z
      .string()
      .regex(/^[0-9]{1,3}$/, 'expected a UNCL4461 payment means code such as 58')
      .default('58')
      .describe(
        'UNCL4461 payment means code (BT-81): 58 SEPA credit transfer, 30 credit transfer.',
      ),
    iban: z
      .string()
      .regex(/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/, 'expected an IBAN without spaces')
      .describe('Account the ISP pays into (BT-84).'),
    bic: z
      .string()
      .regex(/^[A-Z0-9]{8}([A-Z0-9]{3})?$/, 'expected an 8 or 11 character BIC')
      .optional()
      .describe('Bank of the account (BT-86).'),
    accountName: text(140).optional().describe('Name of the account (BT-85).'),
  })
  .describe('How the ISP pays the vendor (BG-16).');

export const vendorBillingSchema = z
  .strictObject({
    seller: partySchema.optional().describe('The vendor, seller of every invoice.'),
    invoiceNumberPrefix: z
      .string()
      .regex(/^[A-Z0-9-]{0,12}$/, 'expected up to 12 capital letters, digits or dashes')
      .default('INV-')
      .describe(
        'Start of every invoice and credit note number: <prefix><YYYY>-<000001>, one gapless sequence per seller and year.',
      ),
    paymentTerms: text(500)
      .default('Payment within 30 days of the invoice date by bank transfer.')
      .describe('Payment terms printed on every invoice (BT-20).'),
    dueDays: z
      .int()
      .min(0)
      .max(120)
      .default(30)
      .describe('Days from the issue date to the payment due date (BT-9).'),
    paymentMeans: paymentMeansSchema.optional(),
    outputDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Folder of the vendor's documents, one <isp>/<period>/ folder each. Relative to relais.yaml; default <dataDir>/vendor-invoices.",
      ),
  })
  .describe('The vendor as seller, invoice numbering, payment and output folder.');

export type Party = z.output<typeof partySchema>;
export type PostalAddress = z.output<typeof postalAddressSchema>;
export type PaymentMeans = z.output<typeof paymentMeansSchema>;
export type VendorBillingSettings = z.output<typeof vendorBillingSchema>;

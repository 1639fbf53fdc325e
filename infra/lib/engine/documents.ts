/**
 * Key prefix of the engine's document objects, `equipment.documents.key_prefix`. The task role's
 * S3 rights cover only keys under it, so the engine gets this value explicitly instead of
 * relying on its default.
 */
export const DOCUMENTS_KEY_PREFIX = 'documents/';

export interface EngineDocumentsProps {
  /** Region of the bucket, which is the environment's region. */
  readonly region: string;
  readonly bucketName: string;
}

/**
 * Builds the engine's `VALMETAL_EQUIPMENT__DOCUMENTS__*` variables: equipment documents go to
 * the data stack's S3 bucket, and browsers move the files through URLs the engine presigns.
 */
export function engineDocumentsEnvironment(props: EngineDocumentsProps): Record<string, string> {
  return {
    VALMETAL_EQUIPMENT__DOCUMENTS__BACKEND: 's3',
    VALMETAL_EQUIPMENT__DOCUMENTS__BUCKET: props.bucketName,
    VALMETAL_EQUIPMENT__DOCUMENTS__KEY_PREFIX: DOCUMENTS_KEY_PREFIX,
    VALMETAL_EQUIPMENT__DOCUMENTS__S3__REGION: props.region,
  };
}

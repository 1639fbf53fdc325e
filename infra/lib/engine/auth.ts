import { cognitoIssuer } from '../auth-stack';

export interface EngineAuthProps {
  /** Region of the user pool, which is the environment's region. */
  readonly region: string;
  readonly userPoolId: string;
  /** App client whose tokens the engine accepts. */
  readonly clientId: string;
}

/**
 * Builds the engine's `VALMETAL_AUTH__*` variables: bearer tokens from the Cognito user pool,
 * checked against the pool's JWKS, which the engine fetches over HTTPS through the NAT gateway.
 * The role and farms come from the `custom:role`, `cognito:groups` and `custom:farms` claims,
 * the engine's defaults.
 */
export function engineAuthEnvironment(props: EngineAuthProps): Record<string, string> {
  const issuer = cognitoIssuer(props.region, props.userPoolId);
  return {
    VALMETAL_AUTH__MODE: 'jwt',
    VALMETAL_AUTH__ISSUER: issuer,
    // A list, written the way the engine's configuration loader parses arrays from variables.
    VALMETAL_AUTH__AUDIENCE: `["${props.clientId}"]`,
    VALMETAL_AUTH__JWKS_URL: `${issuer}/.well-known/jwks.json`,
  };
}

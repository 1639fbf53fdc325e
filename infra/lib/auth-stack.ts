import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { resourcePrefix } from './naming';

export interface AuthStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * Cognito user groups, one per engine role. The engine takes the most privileged of these
 * names among a token's `cognito:groups` when the token has no `custom:role` claim.
 */
export const ROLE_GROUPS = [
  { name: 'admin', description: 'Reads and changes every farm, registers devices and edits rules' },
  { name: 'operator', description: 'Sets desired values, acts on alarms and plans maintenance in the farms of custom:farms' },
  { name: 'farm_viewer', description: 'Reads devices and alarms in the farms of custom:farms' },
] as const;

/**
 * Custom attributes of the user pool, without the `custom:` prefix that Cognito adds. The
 * engine reads `custom:role` and `custom:farms` from ID tokens by default (`auth.role_claim`,
 * `auth.farms_claim`).
 */
export const ROLE_ATTRIBUTE = 'role';
export const FARMS_ATTRIBUTE = 'farms';

/** Lifetime of the dashboard client's ID and access tokens. */
export const TOKEN_VALIDITY = Duration.hours(1);
/** Lifetime of the dashboard client's refresh tokens. */
export const REFRESH_TOKEN_VALIDITY = Duration.days(30);

/**
 * Returns the `iss` of the tokens a Cognito user pool signs, which is also the base of its
 * JWKS URL: `https://cognito-idp.<region>.amazonaws.com/<user pool id>`.
 */
export function cognitoIssuer(region: string, userPoolId: string): string {
  return `https://cognito-idp.${region}.amazonaws.com/${userPoolId}`;
}

/**
 * Sign-in of the dashboard and API users: a Cognito user pool whose ID tokens carry the
 * engine's role and farms, its role groups, and an app client for the dashboard.
 *
 * Only administrators with IAM rights create users and set their role and farms, because self
 * sign-up is off and the dashboard client may not write `custom:role` or `custom:farms`.
 */
export class AuthStack extends Stack {
  readonly userPool: cognito.UserPool;
  readonly dashboardClient: cognito.UserPoolClient;
  /** `iss` of the pool's tokens. */
  readonly issuer: string;

  constructor(scope: Construct, id: string, props: AuthStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config.name);

    this.userPool = new cognito.UserPool(this, 'UserPool', {
      userPoolName: `${prefix}-users`,
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      signInCaseSensitive: false,
      autoVerify: { email: true },
      // A changed e-mail address takes effect only after the user confirms the code sent to it,
      // so a typo cannot lock the user out of sign-in and recovery.
      keepOriginal: { email: true },
      standardAttributes: { email: { required: true, mutable: true } },
      customAttributes: {
        [ROLE_ATTRIBUTE]: new cognito.StringAttribute({ mutable: true, maxLen: 32 }),
        // 2048 characters is the default maximum of CDK's StringAttribute (aws-cdk-lib 2.278).
        [FARMS_ATTRIBUTE]: new cognito.StringAttribute({ mutable: true, maxLen: 2048 }),
      },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      deletionProtection: config.retainData,
      removalPolicy: config.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    for (const [precedence, group] of ROLE_GROUPS.entries()) {
      this.userPool.addGroup(`Group-${group.name}`, {
        groupName: group.name,
        description: group.description,
        // Precedence follows privilege, the order in which the engine ranks the roles.
        precedence,
      });
    }

    // Users may write only these attributes with their own access token. The list is explicit
    // so that `custom:role` and `custom:farms` stay out of it whatever Cognito's default set is.
    // A user who could write them would grant themselves a role or farms.
    const writeAttributes = new cognito.ClientAttributes().withStandardAttributes({
      email: true,
      fullname: true,
    });
    const readAttributes = new cognito.ClientAttributes()
      .withStandardAttributes({ email: true, emailVerified: true, fullname: true })
      .withCustomAttributes(ROLE_ATTRIBUTE, FARMS_ATTRIBUTE);

    this.dashboardClient = this.userPool.addClient('DashboardClient', {
      userPoolClientName: `${prefix}-dashboard`,
      // A browser cannot keep a client secret.
      generateSecret: false,
      // Refresh-token sign-in is always allowed. USER_PASSWORD_AUTH lets a user get tokens
      // with `aws cognito-idp initiate-auth`, because no hosted sign-in page is configured.
      authFlows: { userSrp: true, userPassword: true },
      disableOAuth: true,
      idTokenValidity: TOKEN_VALIDITY,
      accessTokenValidity: TOKEN_VALIDITY,
      refreshTokenValidity: REFRESH_TOKEN_VALIDITY,
      enableTokenRevocation: true,
      preventUserExistenceErrors: true,
      readAttributes,
      writeAttributes,
    });

    this.issuer = cognitoIssuer(config.region, this.userPool.userPoolId);

    new CfnOutput(this, 'UserPoolId', { value: this.userPool.userPoolId });
    new CfnOutput(this, 'DashboardClientId', {
      description: 'App client of the dashboard, whose tokens the engine accepts',
      value: this.dashboardClient.userPoolClientId,
    });
    new CfnOutput(this, 'Issuer', {
      description: 'iss of the user pool tokens, VALMETAL_AUTH__ISSUER of the engine',
      value: this.issuer,
    });
  }
}

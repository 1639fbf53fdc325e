import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

import { EnvironmentConfig } from '../config';
import { resourcePrefix } from '../naming';

/**
 * Creates the VPC: public subnets for the load balancer and NAT gateways, private subnets with
 * egress for the tasks. The zones come from the settings, so synth needs no AWS lookup.
 */
export function createVpc(scope: Construct, config: EnvironmentConfig): ec2.Vpc {
  // The Vpc construct checks the given zones against the region's zones, which it would look
  // up in the account. Recording the configured zones as that lookup's result keeps synth
  // offline; this must happen before the stack has children.
  Stack.of(scope).node.setContext(
    `availability-zones:account=${config.account}:region=${config.region}`,
    config.availabilityZones,
  );
  return new ec2.Vpc(scope, 'Vpc', {
    vpcName: `${resourcePrefix(config.name)}-vpc`,
    ipAddresses: ec2.IpAddresses.cidr(config.vpcCidr),
    availabilityZones: config.availabilityZones,
    natGateways: config.natGateways,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
      { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
    ],
    // Nothing uses the default security group. Emptying it takes a Lambda-backed custom
    // resource whose function and log group would escape the tag and retention rules.
    restrictDefaultSecurityGroup: false,
    // Gateway endpoints are free and keep image layer pulls (S3) and table traffic off the NAT.
    gatewayEndpoints: {
      S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
      DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
    },
  });
}
